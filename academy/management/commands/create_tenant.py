from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from academy.services.tenants import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (academy) with a user, and print the user's API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--premium", action="store_true", help="premium subscription")
        parser.add_argument("--gpu-fallback", action="store_true", help="allow basic -> premium fallback")

    def handle(self, *args: Any, **options: Any) -> None:
        _, token = tenant_create(
            slug=options["slug"],
            username=options["user"],
            name=options["name"],
            premium=options["premium"],
            allow_gpu_fallback=options["gpu_fallback"],
        )
        self.stdout.write(token)
