import signal


def test_serves_and_reloads_keeping_port(server):
    inst = server("--master", "-p", "2")
    assert inst.get("/") == b"hello\n"
    before = inst.wait_workers(2)
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    after = inst.wait_workers(2, exclude=before)
    assert set(after).isdisjoint(before)
    assert inst.get("/") == b"hello\n"
