"""Operations endpoints: health."""

from __future__ import annotations

from flask import Blueprint, request

from alex.errors import envelope
from alex.services import services
from alex.store.base import StoreError

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health():
    """`{"status": "ok"}`; with `?deep=1` the store is checked too (503 naming the failing part)."""
    if request.args.get("deep") in ("1", "true"):
        try:
            services().store.ping()
        except StoreError:
            return envelope(503, "store_unavailable", "The store does not answer; see the server log.",
                            {"failing": ["store"]})
    return {"status": "ok"}
