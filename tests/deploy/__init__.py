"""``make deploy-test``: the container image and compose stack, built and run under Podman."""
