"""Storage backends behind one interface (``base.BacklogStore``)."""
