"""Where frames come from: video files and image folders, cameras (V4L2, CSI, RTSP), and the
latest-frame capture thread over any of them.
"""
