"""jepsen-lite: fault injection on a real kvd cluster and history checkers."""
