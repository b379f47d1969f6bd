# Rack hello world for the benchmark: the same response as bench/apps/hello.py.
#   uwsgi-py --master -p 1 --http-socket 127.0.0.1:8080 --disable-logging --rack bench/apps/hello.ru
BODY = "Hello, World!".freeze
HEADERS = { "Content-Type" => "text/plain", "Content-Length" => BODY.bytesize.to_s }.freeze

run ->(_env) { [200, HEADERS.dup, [BODY]] }
