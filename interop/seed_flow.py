"""The seed's discovery flow, written against the stock MCP Python SDK (not our library).

Queries the registry by tags (GET /servers?tags=...), connects to every server at
``<url>/mcp`` over Streamable HTTP, lists its tools and calls ``search_products`` where it
is offered. Exits non-zero if any step fails.

    python seed_flow.py http://127.0.0.1:4000 [tags]      # tags default to "products"
"""

import asyncio
import json
import sys
import urllib.parse
import urllib.request

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def discover(registry: str, tags: str) -> list[dict]:
    """GET /servers?tags=..., as the seed's ``discoverServers`` does (healthy entries only)."""
    query = urllib.parse.urlencode({"tags": tags})
    with urllib.request.urlopen(f"{registry.rstrip('/')}/servers?{query}", timeout=10) as res:
        return json.load(res)["servers"]


async def use_server(entry: dict) -> bool:
    """Connects to one server, lists its tools, calls search_products if it has it."""
    url = f"{entry['url'].rstrip('/')}/mcp"
    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            names = [tool.name for tool in listed.tools]
            print(f"{entry['id']}: {init.serverInfo.name} {init.serverInfo.version} "
                  f"(protocol {init.protocolVersion}) at {url}: {', '.join(names)}")
            if "search_products" not in names:
                return False
            result = await session.call_tool("search_products", {"query": "laptop", "limit": 2})
            if result.isError:
                raise RuntimeError(f"search_products failed: {result.content}")
            found = result.structuredContent or json.loads(result.content[0].text)
            skus = [p["sku"] for p in found["products"]]
            print(f"  search_products(laptop) -> {found['total_matches']} matches, first {skus}")
            return True


async def main() -> int:
    registry = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4000"
    tags = sys.argv[2] if len(sys.argv) > 2 else "products"
    servers = discover(registry, tags)
    print(f"registry {registry}: {len(servers)} healthy servers tagged {tags}")
    if not servers:
        print("error: no servers found", file=sys.stderr)
        return 1
    called = [await use_server(entry) for entry in servers]
    if not any(called):
        print("error: no server offered search_products", file=sys.stderr)
        return 1
    print("ok: the seed's flow works with the stock Python SDK")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
