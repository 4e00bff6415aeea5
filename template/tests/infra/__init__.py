"""The template's fixtures and checks. Template-owned: `copier update` keeps every
file in this folder current; your tests and fixtures go in tests/, outside it."""
