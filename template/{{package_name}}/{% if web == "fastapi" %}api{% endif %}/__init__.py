"""The API's routers. Yours: rendered once, never overwritten by `copier update`."""
