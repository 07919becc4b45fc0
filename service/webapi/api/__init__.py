"""HTTP routes. Thin: validate, call a service, shape the response."""
