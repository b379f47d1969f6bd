# The Rack test app (tests/integration/test_rack.py). Rack::Lint wraps it, so every
# env the bridge builds and every response it consumes is checked against the
# installed Rack's SPEC: a Lint failure is an exception, which the tests see as a 500.
require "json"

# A body that streams: the second chunk waits until the test creates RELEASE.
class StreamBody
  def initialize(release, errors)
    @release = release
    @errors = errors
  end

  def each
    yield "first chunk\n"
    deadline = Time.now + 20
    sleep 0.02 until File.exist?(@release) || Time.now > deadline
    yield "second chunk\n"
  end

  def close
    @errors.puts("stream body closed")
  end
end

# An endless body (server-sent-events style): only a client that leaves stops it.
class EndlessBody
  def initialize(errors)
    @errors = errors
  end

  def each
    n = 0
    loop do
      yield "tick #{n += 1}\n"
      sleep 0.01
    end
  end

  def close
    @errors.puts("endless body closed")
  end
end

# Helpers live in a module: config.ru's own methods would belong to one Rack::Builder.
module RackTest
  module_function

  def text(body, status = 200, headers = {})
    [status, { "Content-Type" => "text/plain" }.merge(headers), [body]]
  end

  def json(data)
    [200, { "Content-Type" => "application/json" }, [JSON.generate(data)]]
  end

  ENV_KEYS = %w[REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING SERVER_NAME SERVER_PORT
                SERVER_PROTOCOL CONTENT_TYPE CONTENT_LENGTH HTTP_X_TEST rack.url_scheme].freeze

  def environ(env)
    data = ENV_KEYS.to_h { |key| [key, env[key]] }
    data["rack.version"] = env["rack.version"]
    data["rack.multiprocess"] = env["rack.multiprocess"]
    data["rack.multithread"] = env["rack.multithread"]
    data["rack.run_once"] = env["rack.run_once"]
    data["rack.hijack?"] = env["rack.hijack?"]
    data["input_class"] = env["rack.input"].class.name
    data
  end

  def echo(env)
    input = env["rack.input"]
    body = input.read
    eof = input.read(10)
    eof_all = input.read
    input.rewind
    lines = []
    input.each { |line| lines << line }
    input.rewind
    head = input.read(3)
    rest = input.read(nil)
    input.rewind
    gets = input.gets
    input.rewind
    buffer = String.new
    input.read(4, buffer)
    json("body" => body, "eof" => eof, "eof_all" => eof_all, "lines" => lines, "head" => head,
         "rest" => rest, "gets" => gets, "buffer" => buffer)
  end

  def api
    begin
      UWSGI.signal(17)
    rescue NotImplementedError => e
      not_built = e.message
    end
    begin
      UWSGI.worker_id(1)
    rescue ArgumentError => e
      arity = e.message
    end
    json("masterpid" => UWSGI.masterpid, "worker_id" => UWSGI.worker_id,
         "request_id" => UWSGI.request_id, "pid" => Process.pid, "mem" => UWSGI.mem,
         "log" => UWSGI.log("UWSGI.log says hello"), "opt" => UWSGI::OPT,
         "version" => UWSGI::VERSION, "hostname" => UWSGI::HOSTNAME, "numproc" => UWSGI::NUMPROC,
         "pidfile" => defined?(UWSGI::PIDFILE) ? UWSGI::PIDFILE : nil,
         "responds_to_reload" => UWSGI.respond_to?(:reload), "not_built" => not_built, "arity" => arity)
  end

  def route(table, env)
    (table[env["PATH_INFO"]] || ->(_) { text("not found\n", 404) }).call(env)
  end
end

ROUTES = {
  "/" => ->(_env) { RackTest.text("hello from rack\n") },
  "/env" => ->(env) { RackTest.json(RackTest.environ(env)) },
  "/echo" => ->(env) { RackTest.echo(env) },
  "/cookies" => ->(_env) { RackTest.text("cookies\n", 200, "Set-Cookie" => "a=1\nb=2") },
  "/stream" => ->(env) { [200, { "Content-Type" => "text/plain" }, StreamBody.new(env["QUERY_STRING"], env["rack.errors"])] },
  "/endless" => ->(env) { [200, { "Content-Type" => "text/plain" }, EndlessBody.new(env["rack.errors"])] },
  "/errors" => lambda { |env|
    env["rack.errors"].puts("rack.errors line from the app")
    env["rack.errors"].write("rack.errors write from the app\n")
    env["rack.errors"].flush
    RackTest.text("logged\n")
  },
  "/raise" => ->(_env) { raise ArgumentError, "boom from ruby" },
  "/raise-late" => lambda { |_env|
    body = Enumerator.new do |out|
      out << "partial\n"
      raise "late boom from ruby"
    end
    [200, { "Content-Type" => "text/plain" }, body]
  },
  "/api" => ->(_env) { RackTest.api },
  "/pid" => ->(_env) { RackTest.text(Process.pid.to_s) },
  "/logvar" => lambda { |_env|
    UWSGI.set_logvar("user_id", "rb42")
    RackTest.text([UWSGI.get_logvar("user_id"), UWSGI.get_logvar("nope")].inspect)
  },
  "/reload" => ->(_env) { RackTest.text(UWSGI.reload.inspect) },
  "/stop" => ->(_env) { RackTest.text(UWSGI.stop.inspect) },
  "/crash" => ->(_env) { Process.kill(:KILL, Process.pid) },
  "/hang" => ->(_env) { sleep 60; RackTest.text("woke up\n") },
  "/slow" => lambda { |env|
    File.write(env["QUERY_STRING"], "started") unless env["QUERY_STRING"].empty?
    sleep 2
    RackTest.text("slow done #{Process.pid}\n")
  },
}.freeze

# outside Lint: the bridge's own response checks, and files sent by path (body.to_path)
RAW = {
  "/bad-header" => ->(_env) { [200, { "Content-Type" => "text/plain", "X-Bad" => "a\rb" }, ["x"]] },
  "/bad-status" => ->(_env) { [42, { "Content-Type" => "text/plain" }, ["x"]] },
  "/bad-length" => ->(_env) { [200, { "Content-Length" => "many" }, ["x"]] },
  "/arrays" => ->(_env) { [200, { "content-type" => "text/plain", "x-multi" => %w[one two] }, ["rack 3 style\n"]] },
}.freeze

map "/raw" do
  map "/files" do
    run Rack::Files.new(__dir__)
  end
  run ->(env) { RackTest.route(RAW, env) }
end

map "/" do
  use Rack::Lint
  use Rack::Head # a HEAD response must have an empty body (Lint checks it)
  run ->(env) { RackTest.route(ROUTES, env) }
end
