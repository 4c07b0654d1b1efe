"""Tests of gatehouse_auth, run in the example project (`python3 manage.py test`).

They live outside the package so the wheel ships only what a project uses;
gatehouse_auth.testing is the part meant for your own tests.
"""
