"""Transitive group membership: nesting, cycles, account users, SPs by application id."""

from pytest_dbsec.graph import Membership


def _m():
    users = [{"id": "1", "userName": "alice@x.com"}, {"id": "2", "userName": "bob@x.com", "active": False}]
    sps = [{"id": "3", "applicationId": "app-1", "displayName": "etl-sp"}]
    groups = [
        {"id": "10", "displayName": "all-data", "members": [{"value": "11"}]},
        {"id": "11", "displayName": "engineers", "members": [{"value": "12"}, {"value": "3"}]},
        {"id": "12", "displayName": "leads", "members": [{"value": "1"}]},
        {"id": "20", "displayName": "ops", "members": [{"value": "21"}, {"value": "2"}]},
        {"id": "21", "displayName": "sre", "members": [{"value": "20"}]},  # a cycle
    ]
    return Membership(users, groups, sps)


def test_membership_is_transitive_through_nesting():
    m = _m()
    assert m.groups_of("alice@x.com") == {"leads", "engineers", "all-data"}
    assert m.groups_of("app-1") == {"engineers", "all-data"}
    assert m.members_of("all-data") == {"alice@x.com", "app-1"}
    assert m.is_member("alice@x.com", "all-data") and not m.is_member("bob@x.com", "all-data")


def test_cycles_terminate_and_are_reported():
    m = _m()
    assert m.groups_of("bob@x.com") == {"ops", "sre"}
    assert m.groups_of("ops") == {"sre"}  # not itself
    assert m.cycles() == [["ops", "sre"]]


def test_account_users_is_everyone_and_sps_are_found_by_display_name():
    m = _m()
    assert m.members_of("account users") == {"alice@x.com", "bob@x.com", "app-1"}
    assert m.is_member("app-1", "account users")
    assert m.find("etl-sp").name == "app-1" and not m.get("bob@x.com").active


def test_a_group_listing_itself_is_a_cycle_of_one_and_cycles_are_separate():
    groups = [
        {"id": "1", "displayName": "solo", "members": [{"value": "1"}]},
        {"id": "2", "displayName": "a", "members": [{"value": "3"}]},
        {"id": "3", "displayName": "b", "members": [{"value": "4"}]},
        {"id": "4", "displayName": "c", "members": [{"value": "2"}]},  # a -> c -> b -> a, three long
        {"id": "5", "displayName": "outside", "members": [{"value": "2"}]},  # above the ring, not in it
    ]
    m = Membership([], groups, [])
    assert m.cycles() == [["a", "b", "c"], ["solo"]]
    assert m.groups_of("solo") == set() and m.groups_of("c") == {"a", "b", "outside"}
    assert m.chains("c") == {"c": ["c"], "b": ["c", "b"], "a": ["c", "b", "a"], "outside": ["c", "b", "a", "outside"]}
