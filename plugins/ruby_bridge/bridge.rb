# frozen_string_literal: true

# uwsgi-py's Ruby bridge: one persistent process per worker. It loads a Rack
# app with Rack::Builder and serves the requests its worker hands it over a
# socketpair (protocol: docs/ruby_bridge.md).
#
# usage: ruby bridge.rb FD CONFIG_RU   (FD: this end of the worker's socketpair)

require_relative "wire"
require_relative "input"
require_relative "response"
require_relative "uwsgi_api"

module UWSGIBridge
  # rack.errors: to the server log through the worker (so log reopening
  # applies); threads other than the request thread write to $stderr.
  class Errors
    def initialize(channel)
      @channel = channel
    end

    def puts(*args)
      text = StringIO.new
      text.puts(*args)
      write(text.string)
    end

    def write(text)
      text = text.to_s
      if Thread.current == Thread.main
        @channel.frame(WRITE, text)
        @channel.flush
      else
        $stderr.write(text)
      end
      text.bytesize
    end

    def flush
      self
    end

    def close
      nil
    end
  end

  # Serves REQUEST frames until the worker closes the channel.
  class Server
    HTTPS = /\A(?:on|1)\z/i.freeze

    def initialize(channel, app)
      @channel = channel
      @app = app
      @errors = Errors.new(channel)
      @base = {
        "rack.url_scheme" => "http", "rack.errors" => @errors, "rack.multithread" => false,
        "rack.multiprocess" => UWSGI::NUMPROC > 1, "rack.run_once" => false, "rack.hijack?" => false,
      }
      @base["rack.version"] = Rack::VERSION if Rack::VERSION.is_a?(Array)
      @base.freeze
    end

    def run
      while (frame = @channel.read_frame)
        kind, payload = frame
        next if kind == ABORT # late: that request already ended
        raise ProtocolError, "unexpected frame #{kind.inspect} between requests" unless kind == REQUEST

        serve(*Value.unpack(payload))
      end
    end

    def serve(cgi, length)
      input = Input.new(@channel, length)
      env = environ(cgi, input)
      @channel.start_request
      begin
        status, headers, body = @app.call(env)
        Response.new(@channel, env).send_response(status, headers, body)
      rescue ClientAbort
        @channel.discard
        @channel.frame(DONE)
        @channel.flush
      rescue ChannelClosed, SystemExit, SignalException
        raise
      rescue Exception => e # rubocop:disable Lint/RescueException - the app's failure is a 500
        @channel.discard
        @channel.frame_value(EXCEPTION, UWSGIBridge.describe(e))
        @channel.flush
      ensure
        input.finish
      end
    end

    # The Rack env: the worker's CGI vars (values binary, as the SPEC
    # suggests for non-ASCII text) plus the rack.* keys.
    def environ(cgi, input)
      env = @base.dup
      cgi.each { |key, value| env[String.new(key, encoding: Encoding::UTF_8)] = value }
      env["rack.input"] = input
      env["rack.url_scheme"] = "https" if https?(env)
      env
    end

    def https?(env)
      env["HTTPS"]&.match?(HTTPS) || env["UWSGI_SCHEME"] == "https" || env["REQUEST_SCHEME"] == "https"
    end
  end

  def self.describe(error)
    [error.class.name || error.class.inspect, error.message.to_s, error.backtrace || []]
  end

  def self.load_app(config)
    require "uri" # Rack::Lint 2.2 checks SERVER_NAME with URI but does not require it
    require "rack"
    built = Rack::Builder.parse_file(config)
    app = built.is_a?(Array) ? built.first : built # Rack 2 returns [app, options]
    raise TypeError, "#{config} did not build a Rack application (got #{app.class})" unless app.respond_to?(:call)

    app
  end

  def self.boot(channel, config)
    kind, payload = channel.read_frame
    raise ProtocolError, "expected the INIT frame, got #{kind.inspect}" unless kind == INIT

    init = install_api(channel, Value.unpack(payload))
    $PROGRAM_NAME = "uwsgi-py ruby bridge (worker #{init['worker']}) #{config}"
    load_app(config)
  end

  def self.main(argv)
    fd = Integer(argv.fetch(0))
    config = argv.fetch(1)
    $stdout.sync = true
    $stderr.sync = true
    trap("HUP", "IGNORE")  # the worker decides when this process ends
    trap("INT", "IGNORE")
    channel = Channel.new(IO.for_fd(fd, "r+b", autoclose: true))
    begin
      app = boot(channel, config)
    rescue ChannelClosed, SignalException
      raise
    rescue Exception => e # rubocop:disable Lint/RescueException - SyntaxError and LoadError too
      channel.frame_value(EXCEPTION, describe(e))
      channel.flush
      exit(1)
    end
    channel.frame_value(READY, { "pid" => Process.pid, "ruby" => RUBY_VERSION, "rack" => Rack.release })
    channel.flush
    Server.new(channel, app).run
  rescue ProtocolError => e
    $stderr.puts("uwsgi-py ruby bridge: #{e.message}; exiting")
    exit(2)
  rescue ChannelClosed, Errno::EPIPE, Errno::ECONNRESET
    exit(0)
  end
end

UWSGIBridge.main(ARGV) if $PROGRAM_NAME == __FILE__
