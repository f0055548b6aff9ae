"""The Lua scripts of the Redis store: each is one atomic step (a check and its writes), so no two processes can
interleave inside it. Keys are passed in KEYS (one Redis, or one hash slot with a `{prefix}`); see redis_store.py.
"""

# KEYS: session, session stream, bus stream. ARGV: session id, event type, body, retention, bus length.
# Returns the new event id, or false when the session does not exist.
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 't', ARGV[2], 'b', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 's', ARGV[1], 'i', id, 't', ARGV[2], 'b', ARGV[3])
return id
"""

# KEYS: session. ARGV: owner, now (iso). Creates the session unless it exists; 1 when created.
# Its first event id is the server's current millisecond: every id XADD gives it later is at least that.
ENSURE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = redis.call('TIME')
local first = tostring(now[1] * 1000 + math.floor(now[2] / 1000)) .. '-0'
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'closing', '0', 'first_event_id', first,
           'created_at', ARGV[2], 'updated_at', ARGV[2], 'messages', '[]', 'todos', '[]')
return 1
"""

# KEYS: session, active-task claim, task, all tasks, session's tasks, owner's tasks, leases.
# ARGV: task id, task JSON, created score, lease_until, now (iso). Returns ok, gone, closing or busy.
CREATE_TASK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HGET', KEYS[1], 'closing') == '1' then return 'closing' end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX') then return 'busy' end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
return 'ok'
"""

# KEYS: task, leases. ARGV: fields JSON, required status ('' for any), new status ('' to keep), lease ('' to keep).
# Returns 1 when the task was changed.
UPDATE_TASK = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local task = cjson.decode(raw)
if ARGV[2] ~= '' and task['status'] ~= ARGV[2] then return 0 end
for key, value in pairs(cjson.decode(ARGV[1])) do task[key] = value end
if ARGV[3] ~= '' then task['status'] = ARGV[3] end
redis.call('SET', KEYS[1], cjson.encode(task))
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], 'XX', ARGV[4], task['id']) end
return 1
"""

# KEYS: task, active-task claim, leases, session, session stream, bus stream.
# ARGV: status, fields JSON, event type ('' for none), body, retention, bus length.
# Ends an active task and logs its terminal event in the same step. Returns false when it had already ended,
# else the event id ('' without an event, or when the session is gone).
FINISH_TASK = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local task = cjson.decode(raw)
if task['status'] ~= 'queued' and task['status'] ~= 'running' then return false end
for key, value in pairs(cjson.decode(ARGV[2])) do task[key] = value end
task['status'] = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(task))
if redis.call('GET', KEYS[2]) == task['id'] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], task['id'])
if ARGV[3] == '' or redis.call('EXISTS', KEYS[4]) == 0 then return '' end
local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 't', ARGV[3], 'b', ARGV[4])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 's', task['session_id'], 'i', id, 't', ARGV[3],
           'b', ARGV[4])
return id
"""

# KEYS: session. ARGV: field, JSON value, now (iso). 1 when saved, 0 when the session does not exist.
SAVE_SESSION_JSON = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'updated_at', ARGV[3])
return 1
"""

# KEYS: session. 1 when marked.
MARK_CLOSING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'closing', '1')
return 1
"""
