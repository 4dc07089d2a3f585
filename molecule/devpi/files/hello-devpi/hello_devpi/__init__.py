"""Test package for molecule/devpi: its build marker tells one upload from another."""

BUILD = "original"
