"""The REST API of DESIGN section 8, in one table."""

urlpatterns: list = []
