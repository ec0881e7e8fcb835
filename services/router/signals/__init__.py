"""Platform signals in, risk history and pressure out (DESIGN §1, §6, §7).

``models`` validates what comes in, ``alertmanager`` adapts Alertmanager webhooks, ``store``
keeps signals and hourly risk snapshots on the backlog's backend (``outage_journal`` carries
what a Postgres outage accepted on JSONL over to Postgres), ``scoring`` turns them into
risk and pressure scores whose parts a person can read, and ``reports`` renders the digests.
"""
