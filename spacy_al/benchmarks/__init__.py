"""Benchmarks: label efficiency against peer libraries, speed, and durability under kill -9."""
