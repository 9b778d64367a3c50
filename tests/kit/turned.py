"""A plate rolled on the image plane, for the tests of rolled-plate geometry and reading."""

from __future__ import annotations

import cv2
import numpy as np


def turned_bar(deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A 200x40 white bar turned ``deg`` degrees clockwise (on screen) in a black 400x300 frame,
    and its outline (4x2 corners, in order round it)."""
    img = np.zeros((300, 400, 3), np.uint8)
    img[130:170, 100:300] = 255
    m = cv2.getRotationMatrix2D((200, 150), -deg, 1.0)
    quad = np.array([[100, 130], [300, 130], [300, 170], [100, 170]], float) @ m[:, :2].T + m[:, 2]
    return cv2.warpAffine(img, m, (400, 300)), quad
