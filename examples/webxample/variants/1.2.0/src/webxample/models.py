from django.db import models

# The bug of this release: a module that was never added to the package.
from webxample.feature_flags import FLAGS  # noqa: F401


class Counter(models.Model):
    """A named counter: the home page counts its visits in the one named "home"."""

    name = models.CharField(max_length=50, unique=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}={self.value}"
