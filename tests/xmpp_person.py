#!/usr/bin/env python3
"""A person with an ordinary Jabber client (slixmpp) talking to a Lakitu relay.

usage: xmpp_person.py PORT JID PASSWORD RELAY_JID owner TOKEN WANT
       xmpp_person.py PORT JID PASSWORD RELAY_JID stranger
       xmpp_person.py PORT JID PASSWORD RELAY_JID inbox SECS
       xmpp_person.py PORT JID PASSWORD RELAY_JID chat
       xmpp_person.py PORT JID PASSWORD RELAY_JID authors AUTHOR WANT
       xmpp_person.py PORT JID PASSWORD RELAY_JID delete ID
       xmpp_person.py PORT JID PASSWORD RELAY_JID answer WANT TEXT
delete: sends `delete ID` and prints DELETED with the answer.
answer: follows #rust, prints READY, waits for a chat line containing WANT, answers it by
       quoting it above TEXT as chat clients do, and prints REPLIED with the relay's answer.
authors: sends `follow @AUTHOR` and prints AUTHOR with the answer, GOT with the first line
       containing WANT, then UNAUTHOR with the answer to `unfollow @AUTHOR`.
owner: follows #rust, posts "post #rust TOKEN", prints READY, then waits for a chat line
       containing WANT (a post the test makes with `lakitu post`) and prints GOT.
stranger: tries to post and expects the polite refusal.
inbox: logs in, and prints MSG and the text of every chat line the relay sent (the server's
       offline storage included) within SECS seconds.
chat: adds the relay to the roster (expects it to accept, subscribe back and show an available
       presence with a status line), then types commands as people do; prints one line per
       check: PRESENCE, FOLLOW, POSTED (with ECHO if its own post came back first), FEED,
       FEED0, UNFOLLOW.
Every wait is bounded; exits non-zero on failure.
"""
import asyncio, ssl, sys
import slixmpp

PORT, JID, PASSWORD, RELAY = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
MODE = sys.argv[5]


async def main():
    inbox = asyncio.Queue()
    client = slixmpp.ClientXMPP(JID, PASSWORD)
    # STARTTLS against the test server's self-signed certificate, as the recipe proved.
    client.ssl_context.check_hostname = False
    client.ssl_context.verify_mode = ssl.CERT_NONE
    client.enable_starttls = True
    ready = asyncio.Event()

    def on_start(_):
        client.send_presence()
        ready.set()

    presences = asyncio.Queue()

    def on_presence(p):
        if p["from"].bare == RELAY:
            presences.put_nowait((p["type"], str(p["status"])))

    def on_message(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            if MODE == "inbox" and msg["from"].bare != RELAY:
                return
            inbox.put_nowait(str(msg["body"]))

    client.add_event_handler("session_start", on_start)
    client.add_event_handler("message", on_message)
    for kind in ("subscribe", "subscribed", "available", "unsubscribed"):
        client.add_event_handler(f"presence_{kind}", on_presence)
    client.connect("127.0.0.1", PORT)
    await asyncio.wait_for(ready.wait(), 20)

    async def expect(fragment, secs=30):
        while True:
            body = await asyncio.wait_for(inbox.get(), secs)
            if fragment in body:
                return body

    async def answer(secs=30):
        return (await asyncio.wait_for(inbox.get(), secs)).replace("\n", " ")

    if MODE == "inbox":
        await asyncio.sleep(float(sys.argv[6]))
        while not inbox.empty():
            print("MSG", inbox.get_nowait().replace("\n", " "), flush=True)
    elif MODE == "chat":
        # A client that loaded its roster gets the server's roster pushes, as real ones do.
        await client.get_roster()
        client.send_presence(pto=RELAY, ptype="subscribe")
        seen, status = set(), ""
        deadline = asyncio.get_running_loop().time() + 30
        # Accepted (the roster shows it), asked back (auto-authorised here, as a person
        # would), and an available presence with a status line.
        roster = lambda: client.client_roster[RELAY]["subscription"]
        while not ("subscribe" in seen and status and roster() == "both"):
            if asyncio.get_running_loop().time() > deadline:
                sys.exit(f"presence from the relay: saw {sorted(seen)}, status {status!r}, "
                         f"roster {roster()!r}")
            try:
                kind, text = await asyncio.wait_for(presences.get(), 0.5)
            except asyncio.TimeoutError:
                continue
            seen.add(kind)
            if kind in ("available", "") and text:
                status = text
        sub = roster()
        print("PRESENCE", sorted(seen), sub, "|", status, flush=True)
        client.send_message(mto=RELAY, mbody="follow #rust #gossip", mtype="chat")
        print("FOLLOW", await answer(), flush=True)
        client.send_message(mto=RELAY, mbody="post #rust, comma after tag", mtype="chat")
        first = await answer()
        print("POSTED", first if first.startswith("Posted") else "ECHO " + first, flush=True)
        client.send_message(mto=RELAY, mbody="post #gossip. a gossip line", mtype="chat")
        first = await answer()
        print("POSTED", first if first.startswith("Posted") else "ECHO " + first, flush=True)
        client.send_message(mto=RELAY, mbody="feed #rust #gossip", mtype="chat")
        print("FEED", await answer(), flush=True)
        client.send_message(mto=RELAY, mbody="feed 0", mtype="chat")
        print("FEED0", await answer(), flush=True)
        client.send_message(mto=RELAY, mbody="unfollow #never #rust", mtype="chat")
        print("UNFOLLOW", await answer(), flush=True)
    elif MODE == "authors":
        who, want = sys.argv[6], sys.argv[7]
        client.send_message(mto=RELAY, mbody=f"follow @{who}", mtype="chat")
        print("AUTHOR", await answer(), flush=True)
        print("GOT", (await expect(want, 60)).replace("\n", " "), flush=True)
        client.send_message(mto=RELAY, mbody=f"unfollow @{who}", mtype="chat")
        print("UNAUTHOR", await answer(), flush=True)
    elif MODE == "answer":
        want, text = sys.argv[6], sys.argv[7]
        client.send_message(mto=RELAY, mbody="follow #rust", mtype="chat")
        await expect("receive new")
        print("READY", flush=True)
        line = await expect(want, 60)
        # As Conversations and Gajim do: the answered message quoted above the answer.
        quoted = "".join(f"> {l}\n" for l in line.split("\n"))
        client.send_message(mto=RELAY, mbody=f"{quoted}{text}", mtype="chat")
        print("REPLIED", (await expect("Replied")).replace("\n", " "), flush=True)
    elif MODE == "delete":
        client.send_message(mto=RELAY, mbody=f"delete {sys.argv[6]}", mtype="chat")
        print("DELETED", await answer(), flush=True)
    elif MODE == "stranger":
        client.send_message(mto=RELAY, mbody="post #rust forged by a stranger", mtype="chat")
        print("REFUSED", (await expect("only its owner")).replace("\n", " "), flush=True)
    else:
        token, want = sys.argv[6], sys.argv[7]
        client.send_message(mto=RELAY, mbody="follow #rust", mtype="chat")
        await expect("receive new")
        client.send_message(mto=RELAY, mbody=f"post #rust {token}", mtype="chat")
        print("POSTED", (await expect("Posted")).replace("\n", " "), flush=True)
        print("READY", flush=True)
        print("GOT", (await expect(want, 60)).replace("\n", " "), flush=True)
    client.disconnect()
    await asyncio.sleep(0.2)


asyncio.run(main())
