most_commented = db.query(stack.database_url,
                          "SELECT title, score, comment_count FROM stories "
                          "ORDER BY comment_count DESC, title LIMIT 5")
for title, score, comments in most_commented:
    where = "on the front page" if title in titles else "not on the front page"
    print(f"{comments:>3} comments, {score:>3} points, {where}: {title}")
