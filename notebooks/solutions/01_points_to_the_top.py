from datetime import timedelta

top_title, top_score, top_comments, top_created = ranked[0]
top_created = db.as_datetime(top_created)
top_hotness = hotness(top_score, top_comments, top_created)
print(f"the top story: {top_title!r}, {top_score} points, {top_comments} comments")
for hours in (-44, -22, 0, 22):
    posted = top_created + timedelta(hours=hours)
    needed = next(points for points in range(1, 10_000_000)
                  if hotness(points, 0, posted) < top_hotness)
    print(f"posted {hours:+} h from it: {needed} point{'s' if needed > 1 else ''}")
