#!/usr/bin/python3
# Writes fail2ban.sqlite3 with Debian 12's fail2ban (1.0.2) itself: its
# Fail2BanDb creates the schema and inserts each ban as fail2ban-server
# does. Run once, from this directory, with the fail2ban package installed:
#   /usr/bin/python3 gen.py
# The clock is fixed (NOW below): the tests read the bans at that time.
import os
from fail2ban.server.database import Fail2BanDb
from fail2ban.server.ticket import BanTicket
from fail2ban.server.mytime import MyTime

NOW = 1764000000  # 2025-11-24 16:00:00 UTC

class Actions:
    def __init__(self, bantime): self.bantime = bantime
    def getBanTime(self): return self.bantime

class Jail:
    def __init__(self, name, bantime=600):
        self.name = name
        self.actions = Actions(bantime)

def ban(db, jail, ip, ago, bantime, count=1, matches=()):
    t = BanTicket(ip, NOW - ago, list(matches))
    t.setBanTime(bantime)
    t.setBanCount(count)
    db.addBan(jail, t)

if os.path.exists("fail2ban.sqlite3"):
    os.remove("fail2ban.sqlite3")
MyTime.setTime(NOW)
db = Fail2BanDb("fail2ban.sqlite3")
sasl, dovecot, recidive, sshd = Jail("postfix-sasl"), Jail("dovecot"), Jail("recidive", -1), Jail("sshd")
for j in (sasl, dovecot, recidive, sshd):
    db.addJail(j)
# Hundreds of old bans: the tables span many pages and an interior page.
for i in range(400):
    ban(db, sasl, "198.51.%d.%d" % (100 + i // 250, i % 250 + 1), 86400 + i, 3600)
long = ["Nov 24 15:50:%02d mx1 postfix/smtpd[123]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: %s" % (i, "x" * 400) for i in range(10)]
ban(db, sasl, "203.0.113.7", 600, 3600, matches=long)        # 50m left; its data overflows a page
ban(db, dovecot, "203.0.113.7", 60, 7200)                     # the same address in another jail: 1h59m left
ban(db, dovecot, "2001:db8::7", 60, 86400, count=3)           # 23h59m left, third ban
ban(db, recidive, "203.0.113.50", 3 * 86400, -1)              # permanent
ban(db, sshd, "192.0.2.200", 100, 600)                        # 8m20s left, not a mail jail
ban(db, sasl, "127.0.0.1", 30, 3600)                          # loopback: smtpban refuses it
ban(db, sasl, "198.51.100.250", 7200, 3600)                   # ended an hour ago
db.close()
