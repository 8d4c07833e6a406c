"""Identity resolution: clustering source records into master customers with stable IDs."""
