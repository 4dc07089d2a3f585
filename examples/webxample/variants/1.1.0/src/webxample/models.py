from django.db import models


class Counter(models.Model):
    """A named counter: the home page counts its visits in the one named "home"."""

    name = models.CharField(max_length=50, unique=True)
    value = models.PositiveBigIntegerField(default=0)
    # New in 1.1.0. Nullable: rows written by 1.0.0 (before or after a rollback) stay valid.
    last_visit = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name}={self.value}"
