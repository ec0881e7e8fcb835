"""Tools: named actions over the stores, each declaring the entitlement it needs."""
