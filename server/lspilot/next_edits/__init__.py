"""Next edit suggestions: from the user's recent edits, the edit they will make next."""
