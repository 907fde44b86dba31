import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    """Small batches: on a loaded 2-core machine intra-op threads make them up to 50x slower.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def maze():
    import envs

    return envs.make("hardmaze")


def open_bitmap(wall_column: int | None = None) -> np.ndarray:
    """200x200 map with a border wall and optionally a full-height wall at ``wall_column``."""
    bitmap = np.zeros((200, 200), dtype=bool)
    bitmap[0, :] = bitmap[-1, :] = bitmap[:, 0] = bitmap[:, -1] = True
    if wall_column is not None:
        bitmap[:, wall_column] = True
    return bitmap


@pytest.fixture(scope="session")
def walled():
    """Open map with a vertical wall at pixel column 110 (x = 330 units)."""
    from envs.hardmaze import HardMaze

    return HardMaze(bitmap=open_bitmap(110))
