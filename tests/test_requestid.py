import os
import re

from proxy import requestid
from proxy.requestid import new_request_id


def test_ids_have_the_documented_shape_and_do_not_repeat():
    ids = [new_request_id() for _ in range(3 * 256 + 7)]     # across several batches
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_hand_out_the_ids_its_parent_holds():
    new_request_id()                        # the parent now holds a partly used batch
    left = set(requestid._ready)
    assert left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                            # child: report its first ids, then leave at once
        os.close(read)
        os.write(write, " ".join(new_request_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(child_ids) == 4
    assert not child_ids & left
