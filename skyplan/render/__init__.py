"""Human and JSON views of plans, state and errors. Only the CLIs print what these return."""
