"""Backlog generation: digest → candidates → plan → one batch upsert (DESIGN §4-6).

``digest`` validates the two digest files (and is the schema their producers follow),
``candidates`` turns a digest and the policy into ranked, capped candidates, ``plan`` compares
them with the backlog (create / update / unchanged / held_back, carry-over), ``run`` reads what
the plan needs and applies it. Everything but ``run`` and the file loading is pure.
"""
