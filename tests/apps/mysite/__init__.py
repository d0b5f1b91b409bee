"""A Django project for the tests, laid out as `django-admin startproject mysite` lays it out.

`tests/apps` is on the path (as a project's root is), so its package is `mysite` and its
settings module `mysite.settings`: last9's default `program` is `mysite`.
"""
