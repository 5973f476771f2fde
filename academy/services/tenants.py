"""Tenants and their users."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from academy.models import Membership, Tenant, TenantConfig


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    username: str,
    name: str = "",
    premium: bool = False,
    allow_gpu_fallback: bool = False,
) -> tuple[Tenant, str]:
    """Create (or reuse) a tenant with a user; return the tenant and the user's API token."""
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    TenantConfig.objects.update_or_create(
        tenant=tenant,
        defaults={"has_premium_subscription": premium, "allow_gpu_fallback": allow_gpu_fallback},
    )
    user, _ = get_user_model().objects.get_or_create(username=username)
    Membership.objects.update_or_create(user=user, defaults={"tenant": tenant})
    token, _ = Token.objects.get_or_create(user=user)
    return tenant, token.key
