"""The kit's one table, as a Django model."""

from django.db import models


class Row(models.Model):
    name = models.CharField(max_length=20)
