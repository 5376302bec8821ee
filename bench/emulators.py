"""How fast the bundled emulators seed and page (the figures a test must not assert).

    python bench/emulators.py [RECORDS]
"""
from __future__ import annotations

import json
import sys
import time

from syncengine.emulators.alfacrm import create_app
from syncengine.emulators.base import Request


def main(records: int = 50_000) -> None:
    started = time.perf_counter()
    app = create_app(records)
    seeded = time.perf_counter() - started
    login = Request("POST", "/v2api/auth/login", {}, {}, {}, b'{"email": "admin@example.com", "api_key": "emulator"}')
    token = json.loads(app.handle(login).body)["token"]
    started = time.perf_counter()
    pages = 100
    for page in range(pages):
        request = Request("POST", "/v2api/1/customer/index", {"per-page": "50"}, {},
                          {"x-alfacrm-token": token}, f'{{"page": {page * 10}, "removed": 1}}'.encode())
        assert app.handle(request).status == 200
    paged = time.perf_counter() - started
    print(f"alfacrm emulator: seeded {records:,} customers in {seeded:.2f} s; "
          f"{pages} pages of 50 in {paged:.2f} s ({pages / paged:.0f} pages/s, no HTTP)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
