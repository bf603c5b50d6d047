"""Labs: lab definitions stored as rows, and their labfile import, export and plan."""
