from django.apps import AppConfig


class V2AppConfig(AppConfig):
    name = "tests.v2app"
    label = "v2app"
