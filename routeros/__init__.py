"""tikflow's access to RouterOS devices over the binary API, API-SSL, REST and SSH.

Typical use from an activity::

    from routeros.pool import DevicePool
    from routeros.target import DeviceTarget

    pool = DevicePool(max_per_device=2)
    target = DeviceTarget(host="192.0.2.1", port=8729, transport="api-ssl", username="tikflow",
                          password=secret, tls_fingerprint=pinned_sha256)
    async with pool.session(device_id, target) as client:
        rows = await client.print("/ip/address", where={"interface": "ether1"},
                                  proplist=[".id", "address"])

``routeros.client`` defines the ``DeviceClient`` interface, ``routeros.errors`` the typed
errors every method raises, ``routeros.values`` the typed view of the raw strings, and
``routeros.rsc`` parses exports.
"""
