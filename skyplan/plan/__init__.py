"""Plans: what apply would do, computed by a pure function of desired, recorded and actual state."""
