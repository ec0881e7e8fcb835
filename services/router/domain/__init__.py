"""Pure domain: models, transitions, weeks, dedupe keys, dashboard numbers. No I/O here."""
