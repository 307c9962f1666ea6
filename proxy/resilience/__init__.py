"""Provider resilience: routes with fallbacks, retries with a budget, circuit breakers per
upstream (per process or shared through Redis). See docs/resilience.md."""
