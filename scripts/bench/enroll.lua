-- wrk script for scripts/bench/run: every request is one SPKAC enrollment
-- (POST username=<unique>&pubkey=<SPKAC>) with a username never used before.
--
-- wrk -s enroll.lua URL -- POOL PREFIX OUT [EXTRA] [COOKIE]
--   POOL    file, one url-encoded SPKAC per line (made from a few RSA-2048 keys and the
--           challenge found in the GET page; a key may serve many usernames)
--   PREFIX  username prefix, unique per measured point ([a-z0-9] only)
--   OUT     file written by done(): key=value summary lines and one line per certificate
--           serial (upper-case hex, as in index.txt) taken from each 200 answer
--   EXTRA   optional file holding extra url-encoded form fields ("&name=value...")
--   COOKIE  optional Cookie header value sent with every POST
--
-- A 200 counts as an enrollment only when its body is a DER certificate; a 200 with any
-- other body is counted apart (bad200) and is an error, like every non-200 answer.

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("tid", next_id)
   table.insert(threads, thread)
end

local function slurp(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("*a")
   f:close()
   return s
end

pool = {}
codes = {}
serials = {}
bad200 = 0
n = 0

function init(args)
   prefix = args[2] or "u"
   out_path = args[3]
   for line in (slurp(args[1]) or ""):gmatch("[^\r\n]+") do
      table.insert(pool, line)
   end
   if #pool == 0 then
      error("enroll.lua: empty SPKAC pool " .. tostring(args[1]))
   end
   extra = ""
   if args[4] and args[4] ~= "" then
      extra = (slurp(args[4]) or ""):gsub("[\r\n]", "")
   end
   headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
   if args[5] and args[5] ~= "" then
      headers["Cookie"] = args[5]
   end
end

function request()
   n = n + 1
   local body = "username=" .. prefix .. "t" .. tid .. "n" .. n ..
                "&pubkey=" .. pool[(n + tid) % #pool + 1] .. extra
   return wrk.format("POST", nil, headers, body)
end

-- DER length at position i: returns length, position after the length octets
local function der_len(s, i)
   local b = s:byte(i)
   if not b then return nil end
   if b < 0x80 then return b, i + 1 end
   local k, len = b - 0x80, 0
   if k < 1 or k > 4 then return nil end
   for j = 1, k do
      local c = s:byte(i + j)
      if not c then return nil end
      len = len * 256 + c
   end
   return len, i + 1 + k
end

-- serial number of a DER X.509 certificate, as openssl ca writes it in index.txt
local function der_serial(s)
   if #s < 64 or s:byte(1) ~= 0x30 then return nil end
   local len, i = der_len(s, 2)               -- Certificate SEQUENCE
   if not len or i + len - 1 ~= #s then return nil end
   if s:byte(i) ~= 0x30 then return nil end   -- TBSCertificate SEQUENCE
   len, i = der_len(s, i + 1)
   if not len then return nil end
   if s:byte(i) == 0xA0 then                  -- [0] version (absent for v1)
      len, i = der_len(s, i + 1)
      if not len then return nil end
      i = i + len
   end
   if s:byte(i) ~= 0x02 then return nil end   -- serialNumber INTEGER
   len, i = der_len(s, i + 1)
   if not len or len < 1 or len > 20 then return nil end
   if len > 1 and s:byte(i) == 0 then i, len = i + 1, len - 1 end
   local hex = {}
   for j = i, i + len - 1 do hex[#hex + 1] = string.format("%02X", s:byte(j)) end
   return table.concat(hex)
end

function response(status, hdrs, body)
   codes[status] = (codes[status] or 0) + 1
   if status == 200 then
      local serial = der_serial(body or "")
      if serial then
         serials[#serials + 1] = serial
      else
         bad200 = bad200 + 1
      end
   end
end

function done(summary, latency, requests)
   local all = {}
   local ok, bad, total = 0, 0, 0
   local lines = {}
   for _, t in ipairs(threads) do
      for code, count in pairs(t:get("codes") or {}) do
         all[code] = (all[code] or 0) + count
         total = total + count
      end
      bad = bad + (t:get("bad200") or 0)
      for _, s in ipairs(t:get("serials") or {}) do
         ok = ok + 1
         lines[#lines + 1] = "serial=" .. s
      end
   end
   local e = summary.errors
   local sockerr = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   local codestr = {}
   for code, count in pairs(all) do codestr[#codestr + 1] = code .. ":" .. count end
   table.sort(codestr)
   local p = function(q) return latency:percentile(q) / 1000 end
   io.write(string.format(
      "enroll.lua: %d answers in %.2f s: %s; DER certificates %d, bad 200 bodies %d, " ..
      "socket errors %d (connect %d read %d write %d timeout %d)\n",
      total, secs, table.concat(codestr, " "), ok, bad, sockerr,
      e.connect, e.read, e.write, e.timeout))
   -- done() runs in wrk's main Lua state, which never sees the script arguments
   local f = assert(io.open(threads[1]:get("out_path"), "w"))
   f:write(string.format("duration_s=%.6f\n", secs))
   f:write(string.format("answers=%d\nok=%d\nbad200=%d\nsockerr=%d\n", total, ok, bad, sockerr))
   f:write(string.format("non200=%d\n", total - (all[200] or 0)))
   f:write("codes=" .. table.concat(codestr, ",") .. "\n")
   f:write(string.format("rate=%.3f\n", ok / secs))
   f:write(string.format("p50_ms=%.3f\np90_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\n",
                         p(50), p(90), p(99), latency.max / 1000))
   for _, l in ipairs(lines) do f:write(l, "\n") end
   f:close()
end
