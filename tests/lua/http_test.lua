-- gatehouse.http.configure from Lua: the system's CA store plus an extra CA file
-- (Prosody's gatehouse_ca_file). The TLS handshakes themselves: tests/e2e/private_ca.test.js.
return function(t)
	local http = require "gatehouse".http;

	local function temp(contents)
		local path = os.tmpname();
		local f = assert(io.open(path, "wb"));
		f:write(contents);
		f:close();
		return path;
	end

	t.test("http.configure: the system store alone, then with an extra CA file", function()
		local trusted = http.configure({});
		t.truthy(type(trusted) == "string" and (trusted:match("from the system store") or trusted:match("built%-in")), tostring(trusted));
		local pem = t.read(t.root.."/tests/fixtures/test-ca.pem");
		local path = temp(pem);
		local with_file = http.configure({ ca_file = path });
		os.remove(path);
		t.truthy(with_file and with_file:match("and 1 from gatehouse_ca_file$"), tostring(with_file));
	end);

	t.test("http.configure: a missing or certificate-less file is refused, naming it", function()
		local ok, condition, text = http.configure({ ca_file = "/nonexistent/ca.pem" });
		t.eq(ok, nil, "missing file");
		t.eq(condition, "internal-server-error", "condition");
		t.truthy(text:match("/nonexistent/ca.pem"), text);
		local path = temp("not a certificate\n");
		local ok2, _, text2 = http.configure({ ca_file = path });
		os.remove(path);
		t.eq(ok2, nil, "no certificate");
		t.truthy(text2:match("holds no PEM certificate"), text2);
		t.truthy(http.configure({}), "back to the system store");
	end);
end
