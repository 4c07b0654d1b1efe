"""Serializers for the notes API."""
from rest_framework import serializers

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "text", "created"]
        read_only_fields = ["id", "created"]
