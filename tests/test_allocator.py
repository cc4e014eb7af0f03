import platform

import pytest

from graphmeta.allocator import reuse_large_allocations


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc's")
def test_glibc_accepts_the_malloc_settings():
    assert reuse_large_allocations() is True
