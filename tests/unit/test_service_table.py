"""A subscriber's copy of the Directory's table, kept from the push stream's messages."""

from mwkit.directory import Message, ServiceTable


def instance(id_, address="127.0.0.1:5001"):
    return {"service": "popularity", "id": id_, "address": address}


def put(version, id_, address="127.0.0.1:5001", service="popularity"):
    return Message("put", {"version": version, "service": service,
                           "instance": instance(id_, address)})


def delete(version, id_, service="popularity"):
    return Message("delete", {"version": version, "service": service, "id": id_})


def snapshot(version, services, epoch="e1"):
    return Message("snapshot", {"epoch": epoch, "version": version, "services": services})


def ids(table, service="popularity"):
    return [i["id"] for i in table.instances(service)]


def test_a_snapshot_then_puts_and_deletes_give_the_directorys_lists():
    table = ServiceTable()
    assert table.apply(snapshot(3, {"popularity": [instance("a")]})) == {"popularity"}
    assert (table.epoch, table.version) == ("e1", 3)
    assert table.apply(put(4, "b")) == {"popularity"} and ids(table) == ["a", "b"]
    assert table.apply(put(5, "e", service="echo")) == {"echo"}
    assert table.apply(delete(6, "a")) == {"popularity"} and ids(table) == ["b"]
    assert table.version == 6 and table.epoch == "e1"  # a change keeps the snapshot's epoch


def test_an_updated_instance_keeps_its_place_and_a_service_left_empty_is_gone():
    table = ServiceTable()
    table.apply(snapshot(1, {"popularity": [instance("a"), instance("b")]}))
    table.apply(put(2, "a", address="127.0.0.1:5009"))
    assert ids(table) == ["a", "b"]
    assert table.instances("popularity")[0]["address"] == "127.0.0.1:5009"
    table.apply(delete(3, "a"))
    table.apply(delete(4, "b"))
    table.apply(delete(5, "never-listed"))  # nothing to remove: no error, no empty service
    assert table.services() == {}


def test_a_new_snapshot_replaces_everything_and_names_what_it_changed():
    """A restarted Directory (another epoch) sends a snapshot: services it no longer lists
    are gone from the table, and are among the changed ones."""
    table = ServiceTable()
    table.apply(snapshot(7, {"popularity": [instance("a")], "echo": [instance("e")]}))
    changed = table.apply(snapshot(0, {"popularity": [instance("c")]}, epoch="e2"))
    assert changed == {"popularity", "echo"}
    assert table.services() == {"popularity": [instance("c")]}
    assert (table.epoch, table.version) == ("e2", 0)
