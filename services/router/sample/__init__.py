"""SAMPLE DATA for ``make run``: a small platform digest, clearly marked, never real signals."""
