"""Token authentication that loads the caller's academy with the token: one query.

DRF's ``TokenAuthentication`` reads the token and its user (one query); the view then
read the user's membership, its tenant and, in ``job_dispatch``, the tenant's config:
three more queries on every API request. Here the token query joins all of them, so
``selectors.tenant_for_user`` and ``selectors.tenant_policy_of`` find them loaded.

On PostgreSQL the join is one fixed statement, built once per process from the models'
metadata, and its row is turned into the five objects the way ``select_related`` does
(``Model.from_db`` and the relations' caches): compiling the same five-table
``select_related`` query on every request cost about as much CPU as the rest of the
authentication. Other databases (the embedded SQLite of a laptop) use the ORM's
``select_related``, whose result is the same.

Who is allowed is unchanged: the same token lookup, the same inactive-user refusal,
and a user without a membership still has no tenant (403 from the view).
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from academy import sqlrows
from academy.models import Membership, Tenant, TenantConfig

#: The relations loaded with the token: the user, and the user's academy and its config.
TOKEN_RELATED = ("user__membership__tenant__config",)


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token = token_with_academy(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)


def token_with_academy(key: str) -> Token | None:
    """The token with its user, the user's membership, tenant and tenant config loaded."""
    alias = router.db_for_read(Token)
    if connections[alias].vendor != "postgresql":
        return Token.objects.select_related(*TOKEN_RELATED).filter(key=key).first()
    with connections[alias].cursor() as cursor:
        cursor.execute(_join_sql(alias), [key])
        row = cursor.fetchone()
    return None if row is None else _objects_from_row(alias, row)


def _models() -> tuple[type[Model], ...]:
    return (Token, get_user_model(), Membership, Tenant, TenantConfig)


@functools.cache
def _join_sql(alias: str) -> str:
    """SELECT every concrete column of the five models, in ``Model.from_db`` order."""
    quote = connections[alias].ops.quote_name
    token, user, membership, tenant, config = _models()

    def table(model: type[Model], short: str) -> str:
        return f"{quote(model._meta.db_table)} {short}"

    def col(short: str, model: type[Model], name: str) -> str:
        return sqlrows.column(alias, short, model, name)

    columns = sqlrows.select_list(alias, list(zip(("t", "u", "m", "te", "c"), _models(), strict=True)))
    return (
        f"SELECT {columns} FROM {table(token, 't')}"
        f" INNER JOIN {table(user, 'u')} ON {col('u', user, 'pk')} = {col('t', token, 'user')}"
        f" LEFT OUTER JOIN {table(membership, 'm')} ON {col('m', membership, 'user')} = {col('u', user, 'pk')}"
        f" LEFT OUTER JOIN {table(tenant, 'te')} ON {col('te', tenant, 'pk')} = {col('m', membership, 'tenant')}"
        f" LEFT OUTER JOIN {table(config, 'c')} ON {col('c', config, 'tenant')} = {col('te', tenant, 'pk')}"
        f" WHERE {col('t', token, 'key')} = %s"
    )


def _objects_from_row(alias: str, row: tuple[Any, ...]) -> Token:
    """Build the objects and wire their caches as ``select_related`` does (``RelatedPopulator``)."""
    objects = sqlrows.objects_from_row(alias, row, _models())
    token, user, membership, tenant, config = objects
    token_user = Token._meta.get_field("user")
    membership_user = Membership._meta.get_field("user")
    membership_tenant = Membership._meta.get_field("tenant")
    config_tenant = TenantConfig._meta.get_field("tenant")
    token_user.set_cached_value(token, user)
    sqlrows.cache_one_to_one(membership_user, user, membership)  # user.membership (None: no academy)
    if membership is not None:
        membership_tenant.set_cached_value(membership, tenant)
        sqlrows.cache_one_to_one(config_tenant, tenant, config)  # tenant.config (None: no row)
    assert isinstance(token, Token)
    return token
