"""Use cases: each service asks the ports, hands facts to the rules and returns a result."""
