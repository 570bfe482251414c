"""TODO geo."""
