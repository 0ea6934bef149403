#!/usr/bin/env python3
"""Signs in to the console as a browser would (pre-session cookie, CSRF token from the form),
then asks for one page. Prints "<status of the sign-in POST> <status of the page>"; redirects
are not followed (a good sign-in is 303, a page without a session is 303 to /login).

    sign_in.py http://127.0.0.1:8028 user@example.co.jp PASSWORD /dashboard
"""
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main():
    base, user, password, path = sys.argv[1:5]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))

    def status(req):
        try:
            with opener.open(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    page = opener.open(base + "/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]*)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "user": user, "password": password, "next": "/"})
    signed = status(urllib.request.Request(base + "/login", data=form.encode()))
    print(signed, status(base + path))


if __name__ == "__main__":
    main()
