"""Hosts: the machines whose agents run labs, with their capacity and reported facts."""
