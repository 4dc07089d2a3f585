from django.db import models


class Counter(models.Model):
    """A named counter: the home page counts its visits in the one named "home"."""

    name = models.CharField(max_length=50, unique=True)
    value = models.PositiveBigIntegerField(default=0)
    # The bug of this release: a new field whose migration was never written, so every
    # query of the table fails once the app serves.
    label = models.CharField(max_length=50, default="")

    def __str__(self):
        return f"{self.name}={self.value}"
