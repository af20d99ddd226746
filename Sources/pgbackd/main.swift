print("pgbackd")
